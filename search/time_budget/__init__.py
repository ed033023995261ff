"""`convtune tune --budget`: one time budget split between the search and the reproduction."""
