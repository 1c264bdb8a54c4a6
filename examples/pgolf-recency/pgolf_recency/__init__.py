"""pgolf-recency: a recency-cache expert, the example plugin of the pgolf-core tutorial."""
