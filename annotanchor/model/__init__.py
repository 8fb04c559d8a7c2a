"""The network, its losses and the Model that ties them (knows only arrays)."""
