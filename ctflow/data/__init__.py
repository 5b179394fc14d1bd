"""Datasets: MedMNIST (OrganCMNIST & co.) and procedural abdomen phantoms."""
