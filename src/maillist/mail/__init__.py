"""Reading and writing messages: parsing, rendering, signing, digests, mboxes and notices."""
