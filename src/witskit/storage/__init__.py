"""Storage: the durable spool (write-ahead log) and the SQL stores, queries and export."""
