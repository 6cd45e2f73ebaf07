"""libvirt XML in and out."""
