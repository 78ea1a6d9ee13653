"""Typed models of the two claim APIs, the function input, and helpers to validate them."""
