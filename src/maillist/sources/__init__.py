"""Other list servers' own data (mlmmj's list directory, Mailman 2.1's config.pck, Mailman 3's
REST API) read into one `plan.ListPlan` that `services/importer.py` applies. Readers never touch
the store: they name what they found, what it maps to, and what cannot be carried over."""
