"""The GitHub sync: approved changes reach the legacy repositories as pull requests."""
