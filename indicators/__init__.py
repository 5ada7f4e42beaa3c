"""The declarative catalog (TOML): what is measured. No logic lives here."""
