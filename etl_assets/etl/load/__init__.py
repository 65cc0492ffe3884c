"""Load: connections, the schema, staging or a first load by binary COPY, and the publishing transaction."""
