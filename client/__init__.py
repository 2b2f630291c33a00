"""fedntc ClientApp: local training with a personal entropy model."""
