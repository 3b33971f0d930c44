"""The read side: search views, the walk of a body, its rules, the querystring, facets."""
