"""What every layer may use: the project's errors, where data lives, the device, progress bars."""
