"""Neural-network building blocks: layers, activations, losses, initialisation, regularisation."""
