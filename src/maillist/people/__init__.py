"""Who people are: addresses, look-alike addresses, tokens and member files."""
