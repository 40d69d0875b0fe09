from django.dispatch import Signal

# Sent when a book goes out on loan. Arguments: book.
book_borrowed = Signal()
