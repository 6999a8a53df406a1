"""Teams: the coaching bot's messaging endpoint, chat relay and proactive alerts. Every botbuilder import
lives in this package (botbuilder-python is archived; moving to its successor touches this package only)."""
