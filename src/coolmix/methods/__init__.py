"""Weight producers (DoReMi, UniMax, Order Matters) that emit schedules for the same sampler."""
