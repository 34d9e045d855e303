"""Stats service routes: heartbeat, popular models, statistics and deletion risk."""
