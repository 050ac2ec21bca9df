"""One reader per source format. Each returns a recfit.data.tables.RecData."""
