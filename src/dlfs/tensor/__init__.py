"""Topic 01: arrays, shapes, strides and broadcasting."""
