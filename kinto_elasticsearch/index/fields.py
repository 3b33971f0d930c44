"""How the plugin maps fields: the types strings, keywords and dates get, and the
engines' limits a mapping stays within."""

# Strings are searchable as text and sortable/aggregatable through ``.keyword``. The
# limit is the largest that keeps every UTF-8 value under Lucene's 32766-byte term limit.
KEYWORD_IGNORE_ABOVE = 8191

STRING_MAPPING = {
    "type": "text",
    "fields": {"keyword": {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE}},
}
KEYWORD_MAPPING = {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE}
DATE_MAPPING = {"type": "date", "ignore_malformed": True}


# The engines' default ``index.mapping.total_fields.limit`` and ``depth.limit``.
MAX_FIELDS = 1000
MAX_DEPTH = 20
# A JSON schema may name more fields than an index can hold: half of the limit at most,
# the other half stays for dynamic fields.
DERIVED_FIELDS = MAX_FIELDS // 2
