"""Reference architectures, the synthetic product catalog, training recipes and the zoo."""
