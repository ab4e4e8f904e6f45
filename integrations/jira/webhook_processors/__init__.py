"""Ocean's Jira live event processors, ported by changing only their imports."""
