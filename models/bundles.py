"""Resource bundles: named compute presets users pick instead of raw resources."""

from __future__ import annotations

from pydantic import Field

from models.common import CamelModel


class ResourceBundle(CamelModel):
    id: str = Field(examples=["cpu.small"])
    name: str = Field(examples=["Small CPU"])
    description: str = ""
    cpu_count: float = Field(gt=0, examples=[1.0])
    memory_bytes: int = Field(gt=0, examples=[2147483648])
    gpu_count: int = Field(0, ge=0)
    gpu_maker: str | None = Field(None, examples=["nvidia"])
    gpu_type_label: str | None = Field(None, examples=["l4"])
    gpu_memory_bytes: int | None = Field(None, ge=0)

    @property
    def has_gpu(self) -> bool:
        return self.gpu_count > 0
