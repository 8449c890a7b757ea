"""Model architectures: one module each, defining ``ARCHITECTURE`` (`monitor.model.registry`)."""
