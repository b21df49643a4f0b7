// Replaced by the simulator kit.
