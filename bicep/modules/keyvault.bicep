// Key Vault with Azure RBAC: the app's own secrets (referenced from app settings) and every tenant's
// (referenced by name from the database). A secret parameter left empty keeps what the vault holds.

param name string
param location string
param tags object
param privateNetwork bool
param privateEndpointSubnetId string
param vaultDnsZoneId string

@secure()
param workosApiKey string
@secure()
param workosWebhookSecret string
@secure()
param scimCursorSecret string
@secure()
param botAppPassword string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: public mode only: the app on Flex Consumption has no fixed outbound addresses to allow, so the vault is reached over its public endpoint with Entra RBAC as the gate; private mode sets Deny and disables public access
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: privateNetwork ? 'Disabled' : 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: privateNetwork ? 'Deny' : 'Allow'
    }
  }
}

// The app settings reference these names (modules/functionapp.bicep).
resource workosApiKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(workosApiKey)) {
  // checkov:skip=CKV_AZURE_41: an expiry would stop the app on a date nobody chose; these are rotated by ops (README: "Secrets into Key Vault") and Key Vault keeps every version
  // checkov:skip=CKV_AZURE_114: contentType is set below; checkov 3.3 does not read the properties of a conditional resource (tests/infra asserts it instead)
  parent: vault
  name: 'workos-api-key'
  properties: {
    value: workosApiKey
    contentType: 'text/plain'
  }
}

resource workosWebhookSecretSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(workosWebhookSecret)) {
  // checkov:skip=CKV_AZURE_41: an expiry would stop the app on a date nobody chose; these are rotated by ops (README: "Secrets into Key Vault") and Key Vault keeps every version
  // checkov:skip=CKV_AZURE_114: contentType is set below; checkov 3.3 does not read the properties of a conditional resource (tests/infra asserts it instead)
  parent: vault
  name: 'workos-webhook-secret'
  properties: {
    value: workosWebhookSecret
    contentType: 'text/plain'
  }
}

resource scimCursorSecretSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(scimCursorSecret)) {
  // checkov:skip=CKV_AZURE_41: an expiry would stop the app on a date nobody chose; these are rotated by ops (README: "Secrets into Key Vault") and Key Vault keeps every version
  // checkov:skip=CKV_AZURE_114: contentType is set below; checkov 3.3 does not read the properties of a conditional resource (tests/infra asserts it instead)
  parent: vault
  name: 'scim-cursor-secret'
  properties: {
    value: scimCursorSecret
    contentType: 'text/plain'
  }
}

resource botAppPasswordSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(botAppPassword)) {
  // checkov:skip=CKV_AZURE_41: an expiry would stop the app on a date nobody chose; these are rotated by ops (README: "Secrets into Key Vault") and Key Vault keeps every version
  // checkov:skip=CKV_AZURE_114: contentType is set below; checkov 3.3 does not read the properties of a conditional resource (tests/infra asserts it instead)
  parent: vault
  name: 'bot-app-password'
  properties: {
    value: botAppPassword
    contentType: 'text/plain'
  }
}

resource vaultEndpoint 'Microsoft.Network/privateEndpoints@2024-05-01' = if (privateNetwork) {
  name: '${name}-vault'
  location: location
  tags: tags
  properties: {
    subnet: {
      id: privateEndpointSubnetId
    }
    privateLinkServiceConnections: [
      {
        name: 'vault'
        properties: {
          privateLinkServiceId: vault.id
          groupIds: [
            'vault'
          ]
        }
      }
    ]
  }
}

resource vaultZoneGroup 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-05-01' = if (privateNetwork) {
  parent: vaultEndpoint
  name: 'default'
  properties: {
    privateDnsZoneConfigs: [
      {
        name: 'vault'
        properties: {
          privateDnsZoneId: vaultDnsZoneId
        }
      }
    ]
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
