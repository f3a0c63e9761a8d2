"""Where desired state comes from: git repositories and working trees, parsed and validated."""
