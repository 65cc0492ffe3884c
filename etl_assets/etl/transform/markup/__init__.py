"""The markup parser's parts: element tree, rendering, element handlers, result structures."""
