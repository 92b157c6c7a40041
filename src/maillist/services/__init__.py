"""The async service layer shared by the CLI and the SMTP server. Only this layer calls db/."""
