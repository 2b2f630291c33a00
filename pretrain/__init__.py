"""Central training of the project's base model (``fedntc-pretrain``)."""
