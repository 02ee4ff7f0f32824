"""Cities (GB/T 2260 administrative divisions) that file algorithms."""
