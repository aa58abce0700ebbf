"""IO managers: how assets are stored in and loaded from the warehouse."""
