"""What tenant apps read about their users: the provisioning change log (and, with the HRMS issues,
profile context), authenticated with the app's inbound credentials."""
