"""One module per problem family, each with its LightningDataModule and LightningModule."""
