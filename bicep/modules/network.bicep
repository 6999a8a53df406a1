// private mode: one virtual network with a subnet for each kind of traffic, and the private DNS zones
// that make the private endpoints and the Postgres server resolve inside it.

param name string
param location string
param tags object
param addressPrefix string
@description('Subnet prefixes inside addressPrefix: app, postgres, privateEndpoints, ops.')
param subnetPrefixes object

// app: Flex Consumption integrates with a subnet delegated to Microsoft.App/environments.
// postgres: delegated to the flexible server. privateEndpoints: storage (blob, queue) and Key Vault.
// ops: where ops run migrations and the CLI (README: "Postgres: migrate, then the app's role").

// Subnets of new virtual networks have no default way out to the internet: the app (WorkOS, the HRMS
// APIs, the Bot connector, customers' instances) and the ops machine (PyPI, Azure CLI) leave through
// this NAT gateway, from one fixed address that customers can allow.
resource outboundAddress 'Microsoft.Network/publicIPAddresses@2024-05-01' = {
  name: '${name}-outbound'
  location: location
  tags: tags
  sku: {
    name: 'Standard'
  }
  properties: {
    publicIPAllocationMethod: 'Static'
  }
}

resource natGateway 'Microsoft.Network/natGateways@2024-05-01' = {
  name: '${name}-nat'
  location: location
  tags: tags
  sku: {
    name: 'Standard'
  }
  properties: {
    publicIpAddresses: [
      {
        id: outboundAddress.id
      }
    ]
  }
}

resource appSecurityGroup 'Microsoft.Network/networkSecurityGroups@2024-05-01' = {
  name: '${name}-nsg'
  location: location
  tags: tags
}

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      {
        name: 'app'
        properties: {
          addressPrefix: subnetPrefixes.app
          networkSecurityGroup: {
            id: appSecurityGroup.id
          }
          natGateway: {
            id: natGateway.id
          }
          delegations: [
            {
              name: 'flex-consumption'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
        }
      }
      {
        name: 'postgres'
        properties: {
          addressPrefix: subnetPrefixes.postgres
          networkSecurityGroup: {
            id: appSecurityGroup.id
          }
          delegations: [
            {
              name: 'postgres-flexible-server'
              properties: {
                serviceName: 'Microsoft.DBforPostgreSQL/flexibleServers'
              }
            }
          ]
        }
      }
      {
        name: 'private-endpoints'
        properties: {
          addressPrefix: subnetPrefixes.privateEndpoints
          networkSecurityGroup: {
            id: appSecurityGroup.id
          }
        }
      }
      {
        name: 'ops'
        properties: {
          addressPrefix: subnetPrefixes.ops
          networkSecurityGroup: {
            id: appSecurityGroup.id
          }
          natGateway: {
            id: natGateway.id
          }
        }
      }
    ]
  }
}

// Zones: Postgres (a VNet-integrated server wants a zone ending in .postgres.database.azure.com, not the
// privatelink one), and the private endpoints of blob, queue and Key Vault.
var zoneNames = [
  '${name}.private.postgres.database.azure.com'
  'privatelink.blob.${environment().suffixes.storage}'
  'privatelink.queue.${environment().suffixes.storage}'
  'privatelink.vaultcore.azure.net'
]

resource zones 'Microsoft.Network/privateDnsZones@2024-06-01' = [for zoneName in zoneNames: {
  name: zoneName
  location: 'global'
  tags: tags
}]

resource zoneLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2024-06-01' = [for (zoneName, i) in zoneNames: {
  parent: zones[i]
  name: '${name}-link'
  location: 'global'
  tags: tags
  properties: {
    registrationEnabled: false
    virtualNetwork: {
      id: vnet.id
    }
  }
}]

output appSubnetId string = '${vnet.id}/subnets/app'
output postgresSubnetId string = '${vnet.id}/subnets/postgres'
output privateEndpointSubnetId string = '${vnet.id}/subnets/private-endpoints'
output opsSubnetId string = '${vnet.id}/subnets/ops'
output outboundIpAddress string = outboundAddress.properties.ipAddress
output postgresDnsZoneId string = zones[0].id
output blobDnsZoneId string = zones[1].id
output queueDnsZoneId string = zones[2].id
output vaultDnsZoneId string = zones[3].id
