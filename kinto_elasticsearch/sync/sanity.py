"""The sanity check before the tools delete what the engine holds and storage lacks.

Storage is the truth, so what the engine holds beyond it is deleted: by ``verify
--repair``, by ``sync`` for the collections storage no longer has, by a rebuild replacing
an index. A storage that is not the server's (another database, an empty one) makes
everything the engine holds look like that. A real deletion of most of an index, or of
most of the collections, is rare and the operator knows of it: it takes a flag.
"""

# Deleting up to this many is not refused, however little storage holds.
HANDFUL = 5


def deletion_refused(kind, deleted, kept):
    """Why deleting ``deleted`` of ``kind`` while storage holds ``kept`` looks like a
    storage that is not the server's, or None: when storage holds none of them, or when
    more than a handful and more than half of what the engine holds would go."""
    if not deleted:
        return None
    if kept and (deleted <= HANDFUL or deleted <= kept):
        return None
    return (
        f"the engine holds {deleted} {kind} that storage, holding {kept}, lacks: "
        "this storage may not be the server's"
    )
