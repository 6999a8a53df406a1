"""`make bench`: each module's measure() returns figures; __main__ prints them all as one JSON object."""
