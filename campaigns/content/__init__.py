"""What a campaign says: its definition, its templates, the lint, the render path."""
