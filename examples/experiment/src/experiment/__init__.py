"""A toy experiment: fit y = a*x + b to noisy samples."""
