"""Catalog → vectors: read a shop's catalog, embed its images, write them to the store."""
