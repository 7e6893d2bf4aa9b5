"""Purpose-bound, per-field disclosure policies: model, loader, pure engine and the operation planner."""
