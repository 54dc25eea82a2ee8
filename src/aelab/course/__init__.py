"""The course's skeleton as students write it: their model.py and main.py, run as they wrote them."""
