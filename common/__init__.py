"""fedntc core: models, key split, data, training and evaluation (no Flower app code)."""
