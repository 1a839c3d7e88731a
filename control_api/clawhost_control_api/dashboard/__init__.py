"""The dashboard: the agent's state in plain words, the usage gauge and chart, and the live stream that pushes them."""
