"""The invoke gateway: forwards calls under `/endpoints/` to ready replicas of a workload."""
