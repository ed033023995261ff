"""After the search: retrain the best trials deterministically, test them once, ensemble and register them."""
