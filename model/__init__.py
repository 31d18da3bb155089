"""jitloops model layer: networks trained on any kernels backend (see DESIGN.md)."""
