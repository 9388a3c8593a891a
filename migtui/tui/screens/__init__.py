"""Screens: the dashboard, the help, and (issue 4) the pre-switchover dialog."""
