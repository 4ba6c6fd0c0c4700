"""Search orchestration: legs that retrieve, fusion that blends them; shared by API and CLI."""
