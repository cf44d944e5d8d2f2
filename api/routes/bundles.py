"""`/resourceBundles/`: the compute presets workloads choose from; the list also at
`/mlops/compute/bundles/`, where the public Workload API's clients read it."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.deps import BundlesDep, PageDep, Viewer
from api.pagination import page_of
from api.params import BundleId
from models.bundles import ResourceBundle
from models.common import Page

router = APIRouter(prefix="/resourceBundles", tags=["resource bundles"])
compute_router = APIRouter(prefix="/mlops/compute/bundles", tags=["resource bundles"])


@router.get("/", summary="List resource bundles")
async def list_bundles(
    request: Request, bundles: BundlesDep, _: Viewer, page: PageDep
) -> Page[ResourceBundle]:
    """In the order of the catalog file (CPU sizes, then GPU presets)."""
    everything = bundles.all()
    rows = everything[page.offset : page.offset + page.limit]
    return page_of(request, rows, len(everything), page, lambda bundle: bundle)


@compute_router.get("/", summary="List resource bundles (the public API's path)")
async def list_compute_bundles(
    request: Request, bundles: BundlesDep, principal: Viewer, page: PageDep
) -> Page[ResourceBundle]:
    """The same list as `GET /resourceBundles/`, at the path clients of the public Workload
    API use."""
    return await list_bundles(request, bundles, principal, page)


@router.get("/{bundleId}/", summary="Get a resource bundle")
async def get_bundle(bundles: BundlesDep, _: Viewer, bundle_id: BundleId) -> ResourceBundle:
    """CPU, memory and GPU of one bundle."""
    return bundles.get(bundle_id)
