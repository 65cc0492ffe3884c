"""The export area: its assets and the inbox sensor."""
