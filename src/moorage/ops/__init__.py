"""Operations: readiness of the services an instance depends on (and, as they are built,
metrics and maintenance). Installed from app.py; the core does not import it."""
