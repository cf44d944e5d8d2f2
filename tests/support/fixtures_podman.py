"""Session fixtures for real containers: a Podman API service and the offline test images."""
