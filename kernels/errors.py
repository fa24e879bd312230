class Unsupported(Exception):
    """This device/torch cannot realise the case; the message says why, in words a user can act on."""
